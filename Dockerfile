# pg-bulk-ingest: one image for every process (worker, gateway, demo, status/skip/retry).
#   docker build -t pg-bulk-ingest .
#   docker run --rm pg-bulk-ingest --help
# Stage 1 compiles TypeScript with the dev dependencies; stage 2 holds only dist/ and the
# production dependencies, and runs as the unprivileged `node` user.

FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
# METRICS_PORT (/metrics, /healthz, /readyz) and the gateway's GATEWAY_PORT, at their defaults.
EXPOSE 9464 8080
# Node flags: src/ops/node-flags.ts says why (a test keeps the two the same).
ENTRYPOINT ["node", "--max-semi-space-size=8", "dist/ops/cli/main.js"]
CMD ["worker"]
