# PostgreSQL for the matcher, from Debian's package (context: the repository root).
# The cluster is created on first start with the password the setup job wrote
# (docker/postgres-start); the server runs as the unprivileged user postgres (uid 10001,
# like facepp in the other images, so both can read the volumes the setup job writes).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
RUN useradd --uid 10001 --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql /facepp \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql /facepp
COPY docker/wait-for docker/postgres-start /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
CMD ["wait-for", "/facepp/ready", "--", "postgres-start"]
