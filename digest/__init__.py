"""paper-digest: daily digests of the Hugging Face Daily Papers listing."""
