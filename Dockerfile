# consentgate behind gunicorn (sync workers, one per core) on a slim Python base.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY consentgate ./consentgate
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CONSENTGATE_ENV=production \
    CONSENTGATE_POLICY=/app/policies/default.yaml \
    CONSENTGATE_AUTO_MIGRATE=false \
    CONSENTGATE_DATABASE_URL=sqlite:////app/data/consentgate.db \
    WORKERS=2
RUN groupadd --system --gid 10001 consentgate \
    && useradd --system --uid 10001 --gid consentgate --home-dir /app --no-create-home consentgate
COPY --from=build /install /usr/local
WORKDIR /app
COPY --chown=consentgate:consentgate migrations ./migrations
COPY --chown=consentgate:consentgate policies ./policies
# The embedded store needs a writable place; production points CONSENTGATE_DATABASE_URL at PostgreSQL.
RUN install -d -o consentgate -g consentgate /app/data
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
# Migrations run as a documented one-off (`docker run IMAGE consentgate db upgrade`) so that
# several replicas never race to migrate; set CONSENTGATE_AUTO_MIGRATE=true to migrate on start.
CMD ["sh", "-c", "exec consentgate serve --host 0.0.0.0 --port 8000 --workers ${WORKERS}"]
