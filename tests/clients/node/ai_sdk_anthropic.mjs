// AI SDK, the `anthropic` provider instance as its docs show: key and base
// URL come from the environment only. One call: a one-token text generation.
import { generateText } from "ai";
import { anthropic } from "@ai-sdk/anthropic";

const { finishReason } = await generateText({
  model: anthropic("claude-haiku-4-5"),
  prompt: "ping",
  maxOutputTokens: 1,
  maxRetries: 0,
});
console.log(`ok: finish reason ${finishReason}`);
