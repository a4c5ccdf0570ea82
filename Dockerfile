# The dashboard in hosting mode, serving the one store mounted read-only at /store (visitors can name no
# other path):
#   docker build -t prunescope .
#   docker run --rm -p 8501:8501 -v "$PWD/data/demo:/store:ro" prunescope
# Several stores, picked by name: mount their parent at /stores and end the command with `--stores /stores`
# (the CMD below with its last two words replaced).
# Runtime dependencies only (requirements.txt; no test tools), with CPU-only torch: the dashboard needs
# torch for on-demand attribution maps, never a GPU.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 --user-group prunescope
WORKDIR /app
COPY requirements.txt .
RUN pip install --index-url https://download.pytorch.org/whl/cpu \
      "$(grep '^torch==' requirements.txt)" "$(grep '^torchvision==' requirements.txt)" \
 && pip install -r requirements.txt
COPY store/ store/
COPY analysis/ analysis/
COPY compute/ compute/
COPY dashboard/ dashboard/
COPY .streamlit/ .streamlit/

USER prunescope
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"
CMD ["python", "-m", "dashboard.serve", "--server.address", "0.0.0.0", \
     "--server.port", "8501", "--server.headless", "true", "--browser.gatherUsageStats", "false", \
     "--server.fileWatcherType", "none", "--", "--store", "/store"]
