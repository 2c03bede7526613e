// The JSON this app's routes answer with, shared by the route handlers and the page.
import type { ClusterJobResponse, CompareFacesResponse, Face, MatchDecision, PersonFace, PersonSummary, PhotoMatch, QueryFace } from "@face-service/client";

import type { BrowserError } from "./errors";

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

/** One uploaded photo: indexed under `photoId` with its faces counted, or refused with the reason why. */
export interface UploadedPhoto {
  /** The file's name, as the browser sent it. */
  file: string;
  photoId: string;
  faces?: number;
  /** The same photo was uploaded before: nothing was added. */
  duplicate?: boolean;
  error?: BrowserError;
}

/** POST /api/photos/index, form fields `photos` (several): each photo's outcome, in the order sent. */
export interface IndexPhotosResult {
  photos: UploadedPhoto[];
  requestId: string;
}

/** POST /api/photos/find, form field `selfie`: the photos the selfie's face is in, most similar first. */
export interface FindPhotosResult {
  photos: (Pick<PhotoMatch, "similarity"> & { photoId: string; bbox: NonNullable<PhotoMatch["bbox"]> | [] })[];
  requestId: string;
}

/** POST /api/photos/people/group starts grouping the event photos' faces into people; GET: its progress. */
export interface GroupingResult extends Pick<ClusterJobResponse, "state" | "progress" | "people"> {
  requestId: string;
}

/** One person of the event photos: how many faces, the best one (its photo and box), and the name given. */
export interface EventPerson extends Pick<PersonSummary, "faces"> {
  personId: PersonSummary["person_id"];
  photoId: NonNullable<PersonFace["photo_id"]> | null;
  bbox: NonNullable<PersonFace["bbox"]> | [];
  name: string | null;
}

/** GET /api/photos/people: the people found in the event photos, the most faces first. */
export interface EventPeopleResult {
  people: EventPerson[];
  requestId: string;
}

/** POST /api/photos/people/forget, form field `personId`: the person and its faces, forgotten. */
export interface ForgetPersonResult {
  /** Faces deleted with the person. */
  faces: number;
  requestId: string;
}

/** POST /api/photos/people/name, form fields `personId` and `name`: the person's faces, named. */
export interface NamePersonResult {
  name: string;
  /** Faces that took the name (those named before keep theirs). */
  faces: number;
  requestId: string;
}
