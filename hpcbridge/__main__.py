from hpcbridge.cli import main

main()
