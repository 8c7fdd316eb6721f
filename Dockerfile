# syntax=docker/dockerfile:1
# An Tâm in a container: build in one stage, run as a non-root user in a slim image.
# No secret is baked in: ANTAM_MASTER_KEY, tokens and the database password come from the
# environment at run time (see compose.yaml and the README's "Deploying").

# ---- build: install An Tâm and its pinned dependencies into a virtual environment ----------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what the package needs; tests, benchmarks, local data and secrets stay out
# (and .dockerignore keeps them out of the build context too).
COPY constraints.txt pyproject.toml setup.py README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY referrals ./referrals
COPY counselling ./counselling
COPY content ./content
COPY storage ./storage
# setup.py compiles the gettext catalogs (.po -> .mo) while building; PIP_CONSTRAINT also pins
# the build's own dependencies (Babel) in pip's isolated build environment. The content pack is
# checked as installed, then the installers leave: nothing at run time needs them.
RUN python -m venv /opt/antam \
    && PIP_CONSTRAINT=/src/constraints.txt /opt/antam/bin/pip install --constraint constraints.txt . \
    && /opt/antam/bin/antam content check \
    && /opt/antam/bin/python -m pip uninstall --yes --quiet pip setuptools

# ---- runtime: the virtual environment, a non-root user and a data volume -------------------
FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="An Tâm" \
      org.opencontainers.image.description="Confidential outreach and referral chatbot" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed UID/GID, so volume ownership and Kubernetes' runAsNonRoot checks are predictable.
RUN groupadd --system --gid 10001 antam \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/antam --shell /usr/sbin/nologin antam \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/antam
COPY --from=build /opt/antam /opt/antam
# ANTAM_HTTP_HOST=0.0.0.0: inside a container 127.0.0.1 is the container's own loopback, which
# neither the reverse proxy nor a published port can reach; the container's network is the
# boundary here. Outside containers the default stays 127.0.0.1.
ENV PATH=/opt/antam/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ANTAM_DATA_DIR=/var/lib/antam \
    ANTAM_HTTP_HOST=0.0.0.0 \
    ANTAM_HTTP_PORT=8080
WORKDIR /var/lib/antam
USER 10001:10001
# The embedded default's SQLite file and key file, and `antam peer add`'s QR codes; with
# PostgreSQL and ANTAM_MASTER_KEY nothing else needs keeping here.
VOLUME ["/var/lib/antam"]
EXPOSE 8080
# /healthz answers 200 when the server runs and the database answers, 503 otherwise. No curl in a
# slim image: Python's urllib, bypassing any HTTP(S)_PROXY the operator set for outbound calls.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('ANTAM_HTTP_PORT', '8080'), timeout=4)"]
# `antam run` stops cleanly on SIGTERM: it stops taking updates, finishes those in flight, closes.
STOPSIGNAL SIGTERM
ENTRYPOINT ["antam"]
CMD ["run"]
