// Hono environment of the API: per-request variables set by the middleware.
import type { Principal } from "./auth.js";

export interface ApiEnv {
  Variables: {
    requestId: string;
    principal: Principal;
    /** Headers every error answer of this request carries (the sync route names its admitted job). */
    problemHeaders?: Readonly<Record<string, string>>;
  };
}
