from quantpick.cli.app import main

main()
