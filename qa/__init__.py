"""The measuring tools: benchmark, coherence and clip reports, live and GPU checks, soak.
They measure the product (live/, models/, tools/) and are never imported by it."""
