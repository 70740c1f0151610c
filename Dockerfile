FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
RUN pip install --no-cache-dir '.[embedded]'
ENV SKILLSHARE_HOST=0.0.0.0 SKILLSHARE_PORT=8080 SKILLSHARE_DATA_DIR=/data
EXPOSE 8080
USER nobody
CMD ["skillshare", "serve"]
