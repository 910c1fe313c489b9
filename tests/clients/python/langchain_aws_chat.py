"""LangChain, `ChatBedrockConverse(model=...)` as its docs show:
credentials, region and endpoint come from the environment only. One call:
a one-token chat."""
from langchain_aws import ChatBedrockConverse

chat = ChatBedrockConverse(model="anthropic.claude-haiku-4-5-20251001-v1:0", max_tokens=1)
reply = chat.invoke("ping")
print(f"ok: {type(reply).__name__}")
