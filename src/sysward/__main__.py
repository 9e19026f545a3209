from sysward.cli import main

main()
