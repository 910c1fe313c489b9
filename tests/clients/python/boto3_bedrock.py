"""boto3, `boto3.client("bedrock-runtime")` as the Bedrock user guide shows:
credentials, region and endpoint come from the environment only. One call:
a one-token Converse."""
import boto3

client = boto3.client("bedrock-runtime")
response = client.converse(
    modelId="anthropic.claude-haiku-4-5-20251001-v1:0",
    messages=[{"role": "user", "content": [{"text": "ping"}]}],
    inferenceConfig={"maxTokens": 1},
)
print(f"ok: stop reason {response['stopReason']} in {client.meta.region_name}")
