// An admission's input images (API.md §3): each checked before anything is stored — a URL fetched by
// the gateway, an inline `data:` image decoded, a stored object or uploaded asset the caller may
// read — and the checked bytes moved into the CAS. admission.ts runs them for a request that has any.
import type { Principal } from "./auth.js";
import type { BlobStore } from "../core/ports.js";
import { validationError } from "../core/errors.js";
import { dataRefBytes, type GenerationRequest, type ImageRef } from "../core/request-schema.js";
import {
  checkInputImageUrl,
  fetchInputImage,
  verifyInputImage,
  type ImageHold,
  type InputImageDeps,
} from "./input-images.js";

/** What the input images of an admission need (part of admission.ts's AdmissionDeps). */
export interface AdmissionImageDeps {
  readonly blobs: BlobStore;
  /** Records that a customer may read an object (inputs they sent). */
  readonly grantObject: (digest: string, customerId: string) => Promise<void>;
  /**
   * Whether the caller may use a stored object as an input: they own it, are an admin, or gave a
   * signed object URL of it (`url`, the value they sent).
   */
  readonly mayReadObject: (digest: string, principal: Principal, url?: string) => Promise<boolean>;
  /**
   * An uploaded asset as the caller may use it (API.md §3 Uploads): its object's digest once its PUT
   * is done, `pending` before, `missing` when there is none or it is another customer's (an admin may
   * use anyone's).
   */
  readonly resolveAsset: (
    assetId: string,
    principal: Principal,
  ) => Promise<{ digest: string } | "pending" | "missing">;
  /** Fetching, checking and decoding input images (URLs and inline `data:` images). */
  readonly inputs: InputImageDeps;
}

/** The input images a request refers to (a mask only on the image routes). */
export function inputImagesOf(r: GenerationRequest): {
  image?: ImageRef | undefined;
  mask?: ImageRef | undefined;
} {
  return { image: r.image, mask: r.modality === "image" ? r.mask : undefined };
}

export const hasInputImages = (refs: ReturnType<typeof inputImagesOf>) =>
  refs.image !== undefined || refs.mask !== undefined;

/** An input image after its checks: bytes still to be stored, or an object already in the CAS. */
type CheckedImage =
  | { readonly kind: "bytes"; readonly bytes: Uint8Array }
  | { readonly kind: "digest"; readonly digest: string };

/**
 * Checks an input image before anything is stored. A URL is fetched by the gateway (never handed to a
 * GPU backend) and, like an inline `data:` image, checked by its bytes and fully decoded; a stored
 * object must exist and be readable by the caller. An object the caller may not read is reported
 * exactly like a missing one, so a digest never reveals whether someone else stored it; so is an
 * uploaded asset of another customer (docs/decisions.md "Uploads").
 * @throws AppError 400 `validation_error` with `details.field` = `field` (constraints: input-images.ts;
 *   for assets `exists`, or `uploaded` for the caller's own asset before its PUT).
 */
async function checkImage(
  field: string,
  ref: ImageRef,
  principal: Principal,
  deps: AdmissionImageDeps,
  holds: ImageHold[],
): Promise<CheckedImage> {
  switch (ref.kind) {
    case "url": {
      const hold = deps.inputs.budget.take(deps.inputs.maxBytes);
      holds.push(hold);
      const bytes = await fetchInputImage(field, ref.url, deps.inputs);
      hold.shrink(bytes.byteLength);
      await verifyInputImage(field, bytes, undefined, deps.inputs);
      return { kind: "bytes", bytes };
    }
    case "data": {
      const bytes = dataRefBytes(ref);
      holds.push(deps.inputs.budget.take(bytes.byteLength));
      await verifyInputImage(field, bytes, ref.media_type, deps.inputs);
      return { kind: "bytes", bytes };
    }
    case "digest": {
      const usable =
        (await deps.mayReadObject(ref.digest, principal, ref.url)) && (await deps.blobs.has(ref.digest));
      if (!usable) throw validationError(field, "exists", `${field}: no stored object ${ref.digest}`);
      return { kind: "digest", digest: ref.digest };
    }
    case "asset": {
      // Someone else's asset is reported exactly like one that does not exist.
      const missing = () => validationError(field, "exists", `${field}: no asset ${ref.asset_id}`);
      const asset = await deps.resolveAsset(ref.asset_id, principal);
      if (asset === "missing") throw missing();
      if (asset === "pending") {
        throw validationError(
          field,
          "uploaded",
          `${field}: asset ${ref.asset_id} has no uploaded bytes yet; PUT them to its upload_url first`,
        );
      }
      if (!(await deps.blobs.has(asset.digest))) throw missing();
      return { kind: "digest", digest: asset.digest };
    }
  }
}

/**
 * {@link checkImage} for both inputs, after the cheap URL checks of both: a refused mask URL is
 * answered without fetching the image first.
 */
export async function checkImages(
  refs: { readonly image?: ImageRef | undefined; readonly mask?: ImageRef | undefined },
  principal: Principal,
  deps: AdmissionImageDeps,
  holds: ImageHold[],
): Promise<{ image?: CheckedImage; mask?: CheckedImage }> {
  if (refs.image?.kind === "url") checkInputImageUrl("image", refs.image.url, deps.inputs);
  if (refs.mask?.kind === "url") checkInputImageUrl("mask", refs.mask.url, deps.inputs);
  // Both at once: an admission with two image URLs takes one fetch timeout, not two (and stays within
  // the idempotency hold). The image's problem is reported first when both have one.
  const [image, mask] = await Promise.allSettled([
    refs.image && checkImage("image", refs.image, principal, deps, holds),
    refs.mask && checkImage("mask", refs.mask, principal, deps, holds),
  ]);
  if (image.status === "rejected") throw image.reason;
  if (mask.status === "rejected") throw mask.reason;
  return { ...(image.value && { image: image.value }), ...(mask.value && { mask: mask.value }) };
}

/** Moves checked image bytes into the CAS (granting their sender); queued jobs hold digests only. */
export async function storeImage(image: CheckedImage, principal: Principal, deps: AdmissionImageDeps) {
  if (image.kind === "digest") return { kind: "digest", digest: image.digest };
  const digest = await deps.blobs.put(image.bytes);
  await deps.grantObject(digest, principal.customerId);
  return { kind: "digest", digest };
}
