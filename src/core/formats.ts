// Output formats (API.md §3 Formats): the named pixel sizes each modality can produce.

/** Output kind of a model: still images or video clips. */
export type Modality = "image" | "video";

/** Every modality, in the order the API lists them. */
export const MODALITIES: readonly Modality[] = ["image", "video"];

/** Width and height in pixels. */
export interface FormatSize {
  readonly width: number;
  readonly height: number;
}

/** Image formats of the original spec (`ImageFormatId`), in its order; `1024` is the default. */
export const IMAGE_FORMATS: Readonly<Record<string, FormatSize>> = Object.freeze({
  "1024": { width: 1024, height: 1024 },
  "512": { width: 512, height: 512 },
  portrait: { width: 768, height: 1024 },
  "portrait-wide": { width: 576, height: 1024 },
  landscape: { width: 1024, height: 768 },
  "landscape-wide": { width: 1024, height: 576 },
});

/** Video formats of the original spec (`VideoFormatId`), in its order; `720p` is the default. */
export const VIDEO_FORMATS: Readonly<Record<string, FormatSize>> = Object.freeze({
  "720p": { width: 1280, height: 720 },
  "720p-portrait": { width: 720, height: 1280 },
  "480p": { width: 832, height: 480 },
  "480p-portrait": { width: 480, height: 832 },
  square: { width: 640, height: 640 },
});

/** The format table of a modality. */
export const FORMATS: Readonly<Record<Modality, Readonly<Record<string, FormatSize>>>> = Object.freeze({
  image: IMAGE_FORMATS,
  video: VIDEO_FORMATS,
});

const DEFAULT_FORMAT: Readonly<Record<Modality, string>> = { image: "1024", video: "720p" };

/** Ids of a modality's formats, in the spec's order. */
export function formatIds(modality: Modality): readonly string[] {
  // Object.keys lists integer-like keys ("512", "1024") in numeric order, so keep the spec's order by hand.
  return modality === "image"
    ? ["1024", "512", "portrait", "portrait-wide", "landscape", "landscape-wide"]
    : ["720p", "720p-portrait", "480p", "480p-portrait", "square"];
}

/** The format used when a request names none: `1024` for images, `720p` for video. */
export function defaultFormat(modality: Modality): string {
  return DEFAULT_FORMAT[modality];
}

/** Pixel size of a format, or `undefined` when the modality has no such format. */
export function formatSize(modality: Modality, id: string): FormatSize | undefined {
  const table = FORMATS[modality];
  return Object.hasOwn(table, id) ? table[id] : undefined;
}
