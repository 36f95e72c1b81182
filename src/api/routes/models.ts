// GET /models (engines that some reported backend provides), /models/aliases, /models/loras.
import { Hono } from "hono";
import type { Engine, ModelEntry } from "../../core/catalog.js";
import { formatFamilyModel } from "../../core/model-route.js";
import type { ApiEnv } from "../context.js";
import type { ApiDeps } from "../deps.js";
import { servesModel } from "../../config/backends.js";

export function modelRoutes(deps: ApiDeps) {
  const app = new Hono<ApiEnv>();

  app.get("/models", async (c) => {
    const { backends } = await deps.capacity.snapshot();
    const provided = (entry: ModelEntry): Engine[] =>
      entry.backends.filter((engine) =>
        backends.some(
          (b) => b.engine === engine && servesModel(b, formatFamilyModel(entry.family, entry.model)),
        ),
      );
    return c.json(deps.catalog.modelsResponse(provided));
  });
  app.get("/models/aliases", (c) => c.json(deps.catalog.aliases()));
  app.get("/models/loras", (c) => c.json({ loras: deps.catalog.loras() }));

  return app;
}
