# The service's image: the runtime requirements only (no test or lint packages), run as a
# non-root user. docker-compose.yml builds it once for every app service.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
RUN SECRET_KEY=build-only python manage.py collectstatic --no-input -v0 \
    && groupadd --system --gid 10001 energy \
    && useradd --system --uid 10001 --gid energy --home-dir /app --shell /usr/sbin/nologin energy
USER energy
EXPOSE 8000
ENV GUNICORN_BIND=0.0.0.0:8000
CMD ["gunicorn", "energy.wsgi", "-c", "gunicorn.conf.py"]
