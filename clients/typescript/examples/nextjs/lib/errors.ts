// What the browser is told when a call to face-service fails. Two kinds of failure:
// - the photo's fault (unreadable, not an image, too large, no face, several faces, a face too small
//   or unclear), or the name's, or a limit of the collection: the person can act on it, so a 4xx
//   with a message meant for them;
// - the service's configuration or availability (a wrong API key, a 5xx, a timeout, no connection):
//   a 502 or 503 with one generic message and the request id to quote. What the service said (about
//   keys, say) goes to the server's log, never to the browser. So does a collection that is missing,
//   misnamed (FACE_COLLECTION) or of another model (`model_mismatch`): the app's setup, a 502;
//   a gallery store that is down (`store_unavailable`) is a 503 like any other unavailability.
import { FaceServiceError } from "@face-service/client";

/** The JSON body of every error answer of this app's routes. */
export interface BrowserError {
  /** For the person at the browser. */
  error: string;
  /** Stable: a problem's code (below), "service_unavailable" or "internal_error". */
  code: string;
  /** To quote in a report: the server's log and face-service's log carry it too. */
  requestId: string;
}

export interface MappedError {
  status: number;
  body: BrowserError;
  /** For a Retry-After header, when the service gave one. */
  retryAfterSeconds?: number;
}

export const SERVICE_UNAVAILABLE = "The face service is unavailable right now. Please try again in a few minutes.";
const INTERNAL_ERROR = "Something went wrong on our side. Please try again.";

/** The photo's fault, by code (face-service's codes, and this app's own): status and message. */
const PHOTO_PROBLEMS = {
  missing_photo: { status: 400, message: "Choose a photo first." },
  no_face: { status: 422, message: "No face was found. Try a photo where a face is clearly visible." },
  multiple_faces: { status: 422, message: "There are several faces in this photo. Use a photo of one person only." },
  face_too_small: { status: 422, message: "The face is too small in this photo. Use one taken closer up." },
  low_confidence: { status: 422, message: "The face is not clear enough in this photo. Try a sharper, better lit one." },
  low_quality_face: {
    status: 422,
    message: "This photo is not good enough to recognise the face (blurred, dark, small or turned away). Try a sharper, better lit one, facing the camera.",
  },
  invalid_image: { status: 422, message: "The photo could not be read; the file may be damaged. Try another one." },
  unsupported_image_format: { status: 415, message: "This file is not a photo we can read. Use a JPEG, PNG, WebP or BMP." },
  image_too_large: { status: 413, message: "The photo is too large. Try a smaller one." },
  request_too_large: { status: 413, message: "The photos are too large. Try smaller ones." },
  photo_exists: {
    status: 409,
    message: "Another photo with this file name was uploaded already. Rename the file, or upload that same photo.",
  },
  invalid_photo_id: { status: 400, message: "This file name cannot be used. Rename the file and try again." },
} as const satisfies Record<string, { status: number; message: string }>;

export type PhotoProblemCode = keyof typeof PHOTO_PROBLEMS;

/** The name typed (this app's codes, and face-service's for an id it refuses) and the collection's limits. */
const PERSON_PROBLEMS = {
  missing_name: { status: 400, message: "Type a name first." },
  name_too_long: { status: 400, message: "This name is too long. Try a shorter one." },
  invalid_external_id: { status: 400, message: "This name cannot be used. Try a shorter one." },
  subject_not_found: { status: 404, message: "No one is enrolled under this name." },
  face_not_found: { status: 404, message: "This photo is not enrolled (any more)." },
  subject_face_limit: { status: 409, message: "This person has as many photos enrolled as allowed." },
  subject_limit: { status: 409, message: "No one else can be enrolled: the collection is full." },
  collection_face_limit: { status: 409, message: "No more photos can be enrolled: the collection is full." },
  photo_not_found: { status: 404, message: "This photo is not uploaded (any more)." },
  person_not_found: { status: 404, message: "This person is not among the photos' people any more. Group the photos again." },
  invalid_person_id: { status: 400, message: "This person is not among the photos' people. Group the photos again." },
  clustering_not_started: { status: 404, message: "The photos are not being grouped. Group them again." },
  people_named_differently: {
    status: 409,
    message: "This person already has another name: one person cannot have two. Forget the person, or group the photos again.",
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type NameProblemCode = "missing_name" | "name_too_long";
type ProblemCode = PhotoProblemCode | keyof typeof PERSON_PROBLEMS;
const PROBLEMS: Record<ProblemCode, { status: number; message: string }> = { ...PHOTO_PROBLEMS, ...PERSON_PROBLEMS };

/** A problem with a photo that this app finds itself (no file sent, no face in it). */
export class PhotoProblem extends Error {
  constructor(
    readonly code: PhotoProblemCode,
    /** Which photo, when there are several: "the first photo". */
    readonly photo?: string,
  ) {
    super(PHOTO_PROBLEMS[code].message);
    this.name = "PhotoProblem";
  }
}

/** A problem with the name typed (none, or too long for a subject id). */
export class NameProblem extends Error {
  constructor(readonly code: NameProblemCode) {
    super(PERSON_PROBLEMS[code].message);
    this.name = "NameProblem";
  }
}

/** The app itself is not set up: no service URL or API key in its environment (lib/settings.ts). */
export class NotConfigured extends Error {
  override name = "NotConfigured";
}

function isPhotoProblemCode(code: string): code is PhotoProblemCode {
  return Object.hasOwn(PHOTO_PROBLEMS, code);
}

function isProblemCode(code: string): code is ProblemCode {
  return Object.hasOwn(PROBLEMS, code);
}

/** Runs a call about one of several photos, so that a problem with it names that photo. */
export async function aboutPhoto<T>(photo: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof PhotoProblem) throw new PhotoProblem(error.code, photo);
    if (error instanceof FaceServiceError && isPhotoProblemCode(error.code)) throw new PhotoProblem(error.code, photo);
    throw error;
  }
}

/** The status and body the browser gets for an error met while serving request `requestId`. */
export function toBrowserError(error: unknown, requestId: string): MappedError {
  let code: string | undefined;
  let photo: string | undefined;
  if (error instanceof PhotoProblem) {
    ({ code, photo } = error);
  } else if (error instanceof NameProblem) {
    code = error.code;
  } else if (error instanceof FaceServiceError && error.status >= 400 && error.status < 500) {
    code = error.code;
  }
  if (code !== undefined && isProblemCode(code)) {
    const { status, message } = PROBLEMS[code];
    const text = photo ? `${photo[0]?.toUpperCase()}${photo.slice(1)}: ${message}` : message;
    return { status, body: { error: text, code, requestId } };
  }
  const unavailable = { error: SERVICE_UNAVAILABLE, code: "service_unavailable", requestId };
  if (error instanceof FaceServiceError) {
    // Busy (503), rate limited (429), timed out or unreachable (0): unavailable for now.
    if (error.status === 503 || error.status === 429 || error.status === 0) {
      return { status: 503, body: unavailable, retryAfterSeconds: error.retryAfterSeconds };
    }
    // A rejected key (401, 403), a request this app got wrong or a collection not as the app
    // expects (another 4xx: collection_not_found, model_mismatch...), a failure (5xx).
    return { status: 502, body: unavailable };
  }
  if (error instanceof NotConfigured) return { status: 503, body: unavailable };
  return { status: 500, body: { error: INTERNAL_ERROR, code: "internal_error", requestId } };
}

/** The Response for an error: logged in full on the server, mapped for the browser. */
export function errorResponse(error: unknown, requestId: string): Response {
  const { status, body, retryAfterSeconds } = toBrowserError(error, requestId);
  if (status >= 500) console.error(`request ${requestId}: face-service call failed:`, error);
  const headers: Record<string, string> = retryAfterSeconds ? { "Retry-After": String(retryAfterSeconds) } : {};
  return Response.json(body, { status, headers });
}

/** A fresh id for one request of the browser; sent on to face-service as X-Request-ID. */
export function newRequestId(): string {
  return crypto.randomUUID();
}
