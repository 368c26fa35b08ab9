# The service image used by docker-compose.yml (the engine is the official Elasticsearch image).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY ingest ./ingest
COPY index_templates ./index_templates
COPY ilm_policies ./ilm_policies
RUN pip install --no-cache-dir .
ENV AUDITLOG_TEMPLATES_DIR=/app/index_templates \
    AUDITLOG_POLICIES_DIR=/app/ilm_policies \
    AUDITLOG_HOST=0.0.0.0
# the integrity keys' volume: created empty here so that it belongs to the service's user
RUN mkdir -p /var/lib/auditlog/keys && chown nobody /var/lib/auditlog/keys
EXPOSE 8000
USER nobody
CMD ["auditlog", "serve"]
