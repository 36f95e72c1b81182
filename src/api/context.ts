// Hono environment of the API: per-request variables set by the middleware.
import type { Principal } from "./auth.js";

export interface ApiEnv {
  Variables: {
    requestId: string;
    principal: Principal;
  };
}
