# The dashboard, served from a read-only store mounted at /store:
#   docker build -t prunescope .
#   docker run -p 8501:8501 -v "$PWD/data/demo:/store:ro" prunescope
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PRUNESCOPE_STORE=/store
RUN useradd --create-home --uid 10001 prunescope
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY compute/ compute/
COPY store/ store/
COPY dashboard/ dashboard/

USER prunescope
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"
CMD ["python", "-m", "streamlit", "run", "dashboard/app.py", "--server.address", "0.0.0.0", \
     "--server.port", "8501", "--server.headless", "true", "--browser.gatherUsageStats", "false", \
     "--server.fileWatcherType", "none", "--", "--store", "/store"]
