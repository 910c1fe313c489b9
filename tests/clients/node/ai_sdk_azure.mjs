// AI SDK, Azure OpenAI: the key comes from the environment (AZURE_API_KEY).
// The provider reads only a resource name from it (AZURE_RESOURCE_NAME) and
// builds https://<name>.openai.azure.com; for any other endpoint, such as the
// test's loopback mock, the manifest's note says to pass `baseURL` to
// createAzure, and the test hands that URL over as the only argument. One
// call: a one-token text generation on a deployment named after the model.
import { generateText } from "ai";
import { createAzure } from "@ai-sdk/azure";

const azure = createAzure({ baseURL: process.argv[2] });
const { finishReason } = await generateText({
  model: azure("gpt-4o-mini"),
  prompt: "ping",
  maxOutputTokens: 1,
  maxRetries: 0,
});
console.log(`ok: finish reason ${finishReason}`);
