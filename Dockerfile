# whatsagent with PostgreSQL support, serving examples/scale_out.py (replace it with your own app module).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[postgres,openai]'
COPY examples ./examples
WORKDIR /app/examples

# Production runs migrations as a deployment step (the `migrate` service in compose.yaml).
ENV WHATSAGENT_AUTO_MIGRATE=0
EXPOSE 8000
CMD ["whatsagent", "serve", "scale_out:agent_os", "--role", "all", "--host", "0.0.0.0", "--port", "8000"]
