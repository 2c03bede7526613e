// POST /api/photos/people/group: group the event photos' faces into people (face-service re-clusters
// the collection in the background); GET: how far it got. The page polls GET until `state` is done.
import type { GroupingResult } from "@/lib/api";
import { inCollection, photosCollectionName } from "@/lib/collection";
import { errorResponse, newRequestId } from "@/lib/errors";
import { faceService } from "@/lib/face-service";

// Asked afresh each time (the grouping moves on; people change): never rendered once at build.
export const dynamic = "force-dynamic";

export async function POST(): Promise<Response> {
  const requestId = newRequestId();
  try {
    const job = await inCollection((collection) => faceService().startClustering(collection, { requestId }), requestId, photosCollectionName());
    return Response.json({ state: job.state, progress: job.progress, people: job.people, requestId } satisfies GroupingResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}

export async function GET(): Promise<Response> {
  const requestId = newRequestId();
  try {
    const job = await faceService().clusteringStatus(photosCollectionName(), { requestId });
    return Response.json({ state: job.state, progress: job.progress, people: job.people, requestId } satisfies GroupingResult);
  } catch (error) {
    return errorResponse(error, requestId);
  }
}
