// AI SDK, the `bedrock` provider instance as its docs show: credentials,
// region and endpoint come from the environment only. One call: a one-token
// text generation (Converse).
import { generateText } from "ai";
import { bedrock } from "@ai-sdk/amazon-bedrock";

const { finishReason } = await generateText({
  model: bedrock("anthropic.claude-haiku-4-5-20251001-v1:0"),
  prompt: "ping",
  maxOutputTokens: 1,
  maxRetries: 0,
});
console.log(`ok: finish reason ${finishReason}`);
