# syntax=docker/dockerfile:1
# An Tâm: build wheels in one stage, run as a non-root user in a slim image.
# Secrets (ANTAM_MASTER_KEY, tokens) come from the environment at run time, never from the image.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY bot ./bot
COPY handlers ./handlers
COPY referrals ./referrals
COPY content ./content
COPY storage ./storage
RUN pip wheel --no-cache-dir --constraint constraints.txt --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/antam --create-home antam
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER antam
WORKDIR /var/lib/antam
ENV ANTAM_DATA_DIR=/var/lib/antam \
    ANTAM_HTTP_HOST=0.0.0.0 \
    ANTAM_HTTP_PORT=8080 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/antam"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["antam"]
CMD ["run"]
