/* carepostctl - placeholder while the pipeline is written */
#include <stdio.h>
int main(void);
int main(void) { fputs("carepostctl: not yet\n", stderr); return 69; }
