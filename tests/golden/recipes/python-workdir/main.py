import os

from lib.greet import greeting

print(greeting())
with open("installed.txt") as fh:
    print(fh.read().strip())
print("cwd", os.getcwd())
print("USER", os.environ.get("USER"))
