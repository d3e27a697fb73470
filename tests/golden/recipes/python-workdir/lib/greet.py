def greeting() -> str:
    return "hello from /app/lib"
