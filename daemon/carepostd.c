/* carepostd - placeholder while the pipeline is written */
#include <stdio.h>
int main(void);
int main(void) { fputs("carepostd: not yet\n", stderr); return 69; }
