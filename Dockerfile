# orderflow in a container, for those who run them: the Debian package (deploy/debian/), built in
# a first stage and installed into a slim Debian 12 image, so the image holds what the package
# holds and apt brings the libraries it depends on. No container engine runs where this project is
# tested: nothing here exercises this file (README.md).
#
#   docker build -t orderflow .
#   docker run -p 8080:8080 -v orderflow-data:/var/lib/orderflow orderflow
FROM debian:12 AS build
WORKDIR /src
COPY . .
RUN scripts/install-deps.sh \
    && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_UNITY_BUILD=ON \
    && cmake --build build --target orderflow \
    && cd build && cpack -G DEB

FROM debian:12-slim
COPY --from=build /src/build/orderflow_*.deb /tmp/
RUN apt-get update && apt-get install -y --no-install-recommends /tmp/orderflow_*.deb \
    && rm -rf /var/lib/apt/lists/* /tmp/orderflow_*.deb
USER orderflow
VOLUME /var/lib/orderflow
EXPOSE 8080
# The package's configuration, listening on every interface: without --auth-keys that needs
# --insecure; give ORDERFLOW_AUTH_KEYS=/run/secrets/… (a mounted key file) instead in production.
ENV ORDERFLOW_SERVE_LISTEN=0.0.0.0:8080 ORDERFLOW_SERVE_INSECURE=true
CMD ["orderflow", "serve", "--config", "/etc/orderflow/orderflow.toml"]
