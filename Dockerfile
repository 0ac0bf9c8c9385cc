# Outcome Ledger: one image for the API (`outcomes api`) and the workers (`outcomes worker`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package build needs (see pyproject.toml: readme, packages, package data).
COPY pyproject.toml README.md ./
COPY events ./events
COPY services ./services
COPY projections ./projections
COPY workers ./workers

RUN pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 --user-group outcomes

USER outcomes

EXPOSE 8000

CMD ["outcomes", "api", "--host", "0.0.0.0", "--port", "8000"]
