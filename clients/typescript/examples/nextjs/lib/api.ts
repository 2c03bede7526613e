// The JSON this app's routes answer with, shared by the route handlers and the page.
import type { CompareFacesResponse, Face } from "@face-service/client";

export type { BrowserError } from "./errors";

/** POST /api/faces/detect, form field `photo`: every face, largest first. */
export interface DetectResult {
  faces: Pick<Face, "bbox" | "landmarks" | "confidence">[];
  requestId: string;
}

/** POST /api/faces/compare, form fields `a` and `b`: the largest face of each, compared. */
export interface CompareResult extends Pick<CompareFacesResponse, "similarity" | "match" | "threshold"> {
  requestId: string;
}
