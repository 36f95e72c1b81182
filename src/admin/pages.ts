// The admin login and logout pages: plain, accessible HTML forms (a labelled field, an alert for
// errors), no script, nothing loaded from elsewhere, never framed, never cached.

/** Headers of every admin page: no caching, no framing, no referrer to other sites, nothing but inline style. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "x-frame-options": "DENY",
  "referrer-policy": "same-origin",
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

const escapeHtml = (s: string): string =>
  s.replace(
    /[&<>"']/g,
    (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]!,
  );

const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:26rem;margin:12vh auto;padding:2rem;background:#fff;border-radius:8px;box-shadow:0 1px 4px #0002}
h1{font-size:1.4rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input{box-sizing:border-box;width:100%;padding:.5rem;font:inherit;border:1px solid #8a93a6;border-radius:4px}
button{margin-top:1rem;padding:.5rem 1.25rem;font:inherit;font-weight:600;color:#fff;background:#2f5bd3;border:0;border-radius:4px;cursor:pointer}
button:focus-visible,input:focus-visible{outline:3px solid #f5b700;outline-offset:2px}
[role=alert]{padding:.5rem .75rem;background:#fde8e8;border-left:4px solid #c81e1e}
.hint{color:#4a5263;font-size:.9rem}`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · render-gateway admin</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

/** The login form, posting `token` to `action`; `error` is shown above it when set. */
export function loginPage(action: string, error?: string): string {
  const alert = error === undefined ? "" : `<p role="alert" id="login-error">${escapeHtml(error)}</p>\n`;
  const described = error === undefined ? "token-hint" : "login-error token-hint";
  return page(
    "Sign in",
    `<h1>render-gateway admin</h1>
${alert}<form method="post" action="${escapeHtml(action)}">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required maxlength="8192" aria-describedby="${described}"${error === undefined ? "" : ' aria-invalid="true"'} autofocus>
<p class="hint" id="token-hint">A JWT with the admin scope or an admin API key (<code>rk_…</code>).</p>
<button type="submit">Sign in</button>
</form>`,
  );
}

/** The logout form (a POST: a link or an image cannot log anyone out). */
export function logoutPage(action: string): string {
  return page(
    "Log out",
    `<h1>render-gateway admin</h1>
<form method="post" action="${escapeHtml(action)}">
<p>End this browser's admin session.</p>
<button type="submit">Log out</button>
</form>`,
  );
}
