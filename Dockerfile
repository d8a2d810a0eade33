# syntax=docker/dockerfile:1
# Multi-stage build: compile TypeScript with dev dependencies, ship only production dependencies and dist/.
# test/packaging/production-install.test.ts runs the `deps` stage's install and the ENTRYPOINT outside the checkout,
# and test/packaging/dockerfile.test.ts lints this file.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only, installed from the lockfile on their own (no dev dependency was ever in this tree).
FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PORT=8080 \
    TMR_CONFIG=/etc/trusted-mr-bot/trusted-mr-bot.yml
WORKDIR /app
# Owned by root and read-only to the bot: it writes nothing to disk (logs go to stdout), so the root filesystem can
# be mounted read-only (deploy/kubernetes/).
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The official node image ships an unprivileged "node" user; by uid, so Kubernetes' runAsNonRoot can check it.
USER 1000:1000
EXPOSE 8080
# /healthz answers as long as the process is alive; /readyz also needs Redis (use it for load balancers).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains active jobs (worker.shutdown_timeout_ms); give it more time than that with `stop_grace_period`.
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
