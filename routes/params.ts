/** Path parameters shared by the route plugins (validated by the schemas of openapi.yaml). */

export interface QueueParams {
  queue: string
}

export interface JobParams extends QueueParams {
  id: string
}

/**
 * The job id segment, constrained so that `/jobs/{id}:ack` routes to the custom method: the
 * router needs to know where the id ends (at the colon). Any other character is taken, so that
 * a bad id gets the schema's (`JobId`) 400 rather than a 404 for no route; `/jobs/{id}` ends at
 * a colon too, so that an unknown action is a 404, not a GET of a malformed id.
 */
export const JOB_ID = ':id(^[^/:]+)'

/**
 * The queue segment of `/queues/{queue}` and `/queues/{queue}:pause`: it ends at the colon. Any
 * other character is taken, so that a bad name gets the schema's 400 rather than a 404 for no
 * route; a colon starts an action, and an unknown one is a 404 (`GET /queues/q:pause` a 405).
 */
export const QUEUE = ':queue(^[^/:]+)'
