/**
 * Node flags every long-running process of ours is started with: the Dockerfile's ENTRYPOINT,
 * the demo's workers and the bench's workers use these (a test checks the Dockerfile).
 *
 * `--max-semi-space-size=8`: V8's young generation (two semi-spaces, up to 16 MB each by default)
 * grows to its maximum under the worker's allocation rate, a fifth of its peak RSS. At 8 MB the
 * worker's peak RSS drops by about 20 MB with no measurable change in throughput (npm run bench).
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8'];
