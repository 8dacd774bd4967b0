"""How a dataset is gathered: the behaviour policy behind each dataset kind (`behaviour`), the data sources
of one collect run (`sources`) and the SAC teacher the MuJoCo families' sources need (`teacher`).

`pdiff.stages.collect` opens the run and writes the datasets; everything here takes plain values, so tests
call it without a stage.
"""
