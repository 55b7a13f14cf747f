"""One screen per walkthrough family and the modal screens."""
