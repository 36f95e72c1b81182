// Conditional GET (RFC 9110 §13): the one If-None-Match check of the routes that send an ETag.

/**
 * Whether `If-None-Match` matches `etag` (the answer is then 304): `*`, or one of the listed tags by
 * weak comparison (§13.1.2: `W/"x"` and `"x"` match).
 */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, "");
  const own = opaque(etag);
  return header.split(",").some((t) => t.trim() === "*" || opaque(t) === own);
}
