"""What a job needs around the work: loading the MPI library, facts about the launch, signals that
ask a run to stop, and progress on the root. No module here imports another layer of the package.
"""
