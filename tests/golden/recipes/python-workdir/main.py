import os

from lib.greet import greeting

print(greeting())
print(open("installed.txt").read().strip())
print("cwd", os.getcwd())
print("USER", os.environ.get("USER"))
