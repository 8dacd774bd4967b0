from pdiff.cli import main

main()
