// A file's name as a photo id of face-service: ids hold letters, digits and "._:@+=-", at most 128
// of them, never "." or "..". Any other character becomes "_", as the service's CLI does
// (`face-service photos index`); a name too long keeps its end (the extension). Two files whose
// names map to one id are one photo to the service: the second, if different, is refused with
// `photo_exists` (an app with accounts would use its own ids instead, unique per upload).

const OUTSIDE = /[^A-Za-z0-9._:@+=-]/g;
export const MAX_PHOTO_ID_LENGTH = 128;

export function photoId(fileName: string): string {
  const id = (fileName.trim() || "photo").replace(OUTSIDE, "_").slice(-MAX_PHOTO_ID_LENGTH);
  return id === "." || id === ".." ? id.replace(/\./g, "_") : id;
}
