# Two images (see README, "Docker"):
#
#   the worker alone (the default target), to run beside ComfyUI:
#     docker build --platform linux/amd64 -t comfyui-worker .
#     docker run -p 8000:8000 -v worker-data:/data -e COMFYUI_API_BASE=http://<comfyui host>:8188 comfyui-worker
#
#   ComfyUI and the worker in one image, built on a ComfyUI image (docker/start.sh runs both):
#     docker build --platform linux/amd64 --target comfyui \
#       --build-arg COMFYUI_IMAGE=runpod/worker-comfyui:5.5.1-base -t comfyui-worker:comfyui .
#     docker run --gpus all -p 8000:8000 -v worker-data:/data comfyui-worker:comfyui

# Any image with ComfyUI in COMFYUI_DIR (default /comfyui) and a `python` that runs it, on glibc
# 2.28 or later (Debian 10, Ubuntu 20.04 and newer), x86_64. Only the `comfyui` target uses it.
ARG COMFYUI_IMAGE=runpod/worker-comfyui:5.5.1-base

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
# The simulator is part of the build: the worker's --simulate loads it.
COPY simulator ./simulator
COPY cli ./cli
RUN npm run build && npm prune --omit=dev

# ComfyUI and the worker: docker/start.sh starts ComfyUI on 127.0.0.1 (restarting it when it dies)
# and the worker in front of it.
FROM ${COMFYUI_IMAGE} AS comfyui
# Node from the build image: the worker's native module (better-sqlite3) was built for it.
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
ENV NODE_ENV=production \
    SQLITE_DB_PATH=/data/comfyui_jobs.db \
    BENCHMARK_CACHE_PATH=/data/.has_benchmark \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true \
    COMFYUI_DIR=/comfyui \
    COMFYUI_PORT=8188 \
    COMFY_LOG_LEVEL=INFO
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY misc ./misc
COPY benchmark ./benchmark
COPY cli ./cli
COPY docker/start.sh docker/healthcheck.js ./docker/
RUN chmod 0755 docker/start.sh && mkdir -p /data
VOLUME ["/data"]
EXPOSE 8000 3000
# /health answers 503 until ComfyUI is up; loading models may take minutes.
HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 CMD ["node", "/app/docker/healthcheck.js"]
# The worker gets up to 30 s to stop (its running job may finish), then ComfyUI stops: give the
# container that much (`docker stop -t 45`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
# The base image's ENTRYPOINT (if any) would wrap this; ours is the whole start.
ENTRYPOINT []
CMD ["/app/docker/start.sh"]

# The worker alone (the default target).
FROM node:20-bookworm-slim AS worker
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
COPY cli ./cli
COPY docker/healthcheck.js ./docker/
# /data holds the job database and the benchmark cache; owned by node too, for whoever runs the
# image with --user node.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
# No `USER node`: GPU images and Vast's bootstrap run as root, and Vast writes the TLS key
# /etc/instance.key (USE_SSL) readable by root only; a non-root worker could not load it.
EXPOSE 8000 3000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["node", "/app/docker/healthcheck.js"]
STOPSIGNAL SIGTERM
# --optimize-for-size: the worker only orchestrates; a small, steady heap matters more than peak JIT
# speed (perf/jobs-api.ts: peak RSS ~100 MB instead of ~170 MB under 10,000 submissions).
# --expose-gc: a large output's transfer asks for a young-generation collection every 2 MiB, so the
# dead socket buffers it leaves are freed as it goes (worker/util/transfer-gc.ts).
CMD ["node", "--enable-source-maps", "--optimize-for-size", "--expose-gc", "dist/worker/main.js"]
