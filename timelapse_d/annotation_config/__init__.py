"""What annotators see and answer: the taxonomy, the Label Studio config, the guidelines (data
files, installed with the package; read through ``importlib.resources``)."""
