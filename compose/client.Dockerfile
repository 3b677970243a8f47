# The compose demo's client: boto3 (the versions of requirements.txt) and the grant-sigv4
# Python helpers from clients/python. Build context: the repository root.
FROM python:3.12-slim
RUN pip install --no-cache-dir boto3==1.44.8 botocore==1.44.8
COPY clients/python /app/clients/python
RUN pip install --no-cache-dir /app/clients/python
COPY compose/demo_client.py /app/demo_client.py
CMD ["python", "/app/demo_client.py"]
