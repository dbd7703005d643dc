# comfyui-worker: runs beside ComfyUI (which is not part of this image). Put both in one pod or
# base your ComfyUI image on this one; the worker reaches ComfyUI at COMFYUI_API_BASE.
#
#   docker build --platform linux/amd64 -t comfyui-worker .
#   docker run -p 8000:8000 -v worker-data:/data -e COMFYUI_API_BASE=http://127.0.0.1:8188 comfyui-worker

FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 builds natively when no prebuilt binary matches.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY worker ./worker
COPY modifiers ./modifiers
COPY benchmark ./benchmark
COPY perf ./perf
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
# The AWS SDK warns on Node 20 that its future releases need Node 22; this image pins both.
ENV NODE_ENV=production \
    SQLITE_DB_PATH=/data/comfyui_jobs.db \
    BENCHMARK_CACHE_PATH=/data/.has_benchmark \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY misc ./misc
COPY benchmark ./benchmark
# /data holds the job database and the benchmark cache; owned by node too, for whoever runs the
# image with --user node.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
# No `USER node`: GPU images and Vast's bootstrap run as root, and Vast writes the TLS key
# /etc/instance.key (USE_SSL) readable by root only; a non-root worker could not load it.
EXPOSE 8000 3000
STOPSIGNAL SIGTERM
# --optimize-for-size: the worker only orchestrates; a small, steady heap matters more than peak JIT
# speed (perf/jobs-api.ts: peak RSS ~100 MB instead of ~170 MB under 10,000 submissions).
CMD ["node", "--enable-source-maps", "--optimize-for-size", "dist/worker/main.js"]
