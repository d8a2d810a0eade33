# syntax=docker/dockerfile:1
# Multi-stage build: compile TypeScript with dev dependencies, ship only production dependencies and dist/.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `npm install` as a fallback: the lockfile may lack other platforms' optional binaries (see scripts/setup-env.sh).
RUN npm ci --no-audit --no-fund || npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PORT=8080 \
    TMR_CONFIG=/etc/trusted-mr-bot/trusted-mr-bot.yml
WORKDIR /app
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --chown=node:node package.json ./
# The official node image ships an unprivileged "node" user (uid 1000).
USER node
EXPOSE 8080
# /healthz answers as long as the process is alive; /readyz also needs Redis (use it for load balancers).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains active jobs (worker.shutdown_timeout_ms); give it more time than that with `stop_grace_period`.
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
