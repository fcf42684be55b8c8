from mlip_autopipec.cli import main

main()
