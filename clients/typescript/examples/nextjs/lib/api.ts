// The JSON this app's routes answer with, shared by the route handlers and the page.
import type { CompareFacesResponse, Face, MatchDecision, QueryFace } from "@face-service/client";

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

/** POST /api/people/enroll, form fields `name` and `photo`: the photo's one face, enrolled under the name. */
export interface EnrollResult {
  name: string;
  /** The same photo was already enrolled for this name: nothing was added. */
  duplicate: boolean;
  requestId: string;
}

/** POST /api/people/search, form field `photo`: each face, and who it is (`name: null`: nobody enrolled). */
export interface SearchResult {
  faces: (Pick<QueryFace, "bbox"> & { name: string | null; similarity: MatchDecision["similarity"] })[];
  requestId: string;
}
